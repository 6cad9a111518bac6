"""spikingbrain.neuromorphic."""
