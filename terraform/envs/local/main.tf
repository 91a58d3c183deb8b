# Local environment: a database with its roles, schemas and grants on the embedded PostgreSQL and a
# bucket on the embedded S3 store. Each part is applied and destroyed by vitalflow's bootstrap
# (python -m vitalflow.provision.local_env); connection details travel in the environment, so no
# secret is on a command line or in this state.
locals {
  database = {
    admin_url       = var.admin_url
    database        = var.database_name
    role_prefix     = var.role_prefix
    passfile        = var.passfile
    schemas         = var.schemas
    analyst_schemas = var.analyst_schemas
    python          = var.python
  }
  bucket = {
    endpoint = var.s3_endpoint
    home     = var.s3_home
    bucket   = var.bucket
    python   = var.python
  }
}

resource "terraform_data" "database" {
  input = local.database

  provisioner "local-exec" {
    command     = "\"$VITALFLOW_PYTHON\" -m vitalflow.provision.local_env apply database"
    environment = { VITALFLOW_PYTHON = self.input.python, VITALFLOW_LOCAL_SPEC = jsonencode(self.input) }
  }

  provisioner "local-exec" {
    when        = destroy
    command     = "\"$VITALFLOW_PYTHON\" -m vitalflow.provision.local_env destroy database"
    environment = { VITALFLOW_PYTHON = self.input.python, VITALFLOW_LOCAL_SPEC = jsonencode(self.input) }
  }
}

resource "terraform_data" "bucket" {
  input = local.bucket

  provisioner "local-exec" {
    command     = "\"$VITALFLOW_PYTHON\" -m vitalflow.provision.local_env apply bucket"
    environment = { VITALFLOW_PYTHON = self.input.python, VITALFLOW_LOCAL_SPEC = jsonencode(self.input) }
  }

  provisioner "local-exec" {
    when        = destroy
    command     = "\"$VITALFLOW_PYTHON\" -m vitalflow.provision.local_env destroy bucket"
    environment = { VITALFLOW_PYTHON = self.input.python, VITALFLOW_LOCAL_SPEC = jsonencode(self.input) }
  }
}
