"""Diagnostics of recurrent training: gradient flow through time, recurrent weight spectra, clipping stats."""
