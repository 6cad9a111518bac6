"""spikingbrain.converter."""
