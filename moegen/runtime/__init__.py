"""Host side shared by generated modules: launch plans and validation, routing, the fp32 reference, dispatch."""
