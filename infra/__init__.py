"""Infrastructure as code: the CloudFormation stack under Chalice, and its deploy helpers."""
