"""Neural data as rnnprobe objects: RDM files as `RDMs`, response arrays as RDMs or a `Recording`."""

from .rdm_files import load_rdms, rdms_from_responses

__all__ = ["load_rdms", "rdms_from_responses"]
