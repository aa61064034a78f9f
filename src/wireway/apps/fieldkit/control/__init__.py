"""The field kit's control API: starting and stopping the kit's programs (the services
of the deployment) for the operators' page, on port 8092 as the kit's Node service did."""
