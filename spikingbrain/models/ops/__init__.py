"""Operations of the SpikingBrain models, each with a naive reference beside it."""
