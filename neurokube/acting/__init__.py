"""Acting on running pods: in-place resizes and evictions (issue 18). Pure core; see acting/base.py."""
