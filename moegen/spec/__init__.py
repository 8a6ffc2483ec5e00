"""Load and validate variants.yaml (positions kept), the model it becomes, and its expansion into variants."""
