"""spikingbrain.analysis."""
