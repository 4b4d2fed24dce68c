"""The learned placement model: value model, policy, decision log schema, off-policy evaluation.

Nothing here imports the simulator: the simulator runs the policy, and the training loop
(:mod:`neurokube.learning`) sits above both.
"""
