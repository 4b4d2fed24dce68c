"""The training loop: drives replays (simulator) with behaviour policies and fits the value model.

It sits above both :mod:`neurokube.sim` and :mod:`neurokube.model`; neither imports it.
"""
