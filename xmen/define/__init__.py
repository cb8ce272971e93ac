"""What users write: experiment classes, functions and their parameters, and the Monitor of training loops."""
