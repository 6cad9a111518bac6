"""The standalone Lava runner's modules (standard library + numpy + lava; no torch, no
spikingbrain import). ``spikingbrain/neuromorphic/lava_runner.py`` is the entry point and puts
this folder on ``sys.path`` when it runs outside the package; see its docstring.
"""
