"""Recurrent models: exact unrolled torch RNN modules (and, later, the model zoo)."""
