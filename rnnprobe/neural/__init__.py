"""Neural data as rnnprobe objects: responses as a `Recording` (a brain area is a layer), RDMs as `RDMs`.

- :mod:`.responses`: :func:`from_responses`, arrays of any axis order as a Recording;
- :mod:`.rdm_files`: :func:`load_rdms` (.mat, .npy, .npz, rsatoolbox), :func:`rdms_from_matrices`,
  :func:`rdms_from_responses`;
- :mod:`.datasets`: loaders of public data sets (Zhang et al. 2011 IT rasters, Churchland et al. 2012
  motor cortex, Cichy et al. 2014 fMRI RDMs, Kriegeskorte et al. 2008 92-image RDMs).
"""

from .datasets import (
    Kriegeskorte92,
    data_folder,
    load_churchland,
    load_cichy_fmri,
    load_kriegeskorte92,
    load_zhang_desimone,
)
from .rdm_files import load_rdms, rdms_from_matrices, rdms_from_responses
from .responses import from_responses

__all__ = [
    "Kriegeskorte92",
    "data_folder",
    "from_responses",
    "load_churchland",
    "load_cichy_fmri",
    "load_kriegeskorte92",
    "load_rdms",
    "load_zhang_desimone",
    "rdms_from_matrices",
    "rdms_from_responses",
]
