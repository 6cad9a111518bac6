"""spikingbrain.models: SpikingBrain model definitions (planned)."""
