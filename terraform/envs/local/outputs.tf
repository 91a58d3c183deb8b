output "vitalflow" {
  description = "Settings for `vitalflow config from-terraform --env-dir terraform/envs/local` (the password is in the passfile, never here)."
  value = {
    environment     = "local"
    storage_profile = var.storage_profile
    database = {
      host     = regex("@([^:/]+)", var.admin_url)[0]
      port     = tonumber(regex(":([0-9]+)/", var.admin_url)[0])
      name     = terraform_data.database.output.database
      user     = "${terraform_data.database.output.role_prefix}_app"
      passfile = terraform_data.database.output.passfile
    }
    s3 = {
      endpoint = terraform_data.bucket.output.endpoint
      region   = "us-east-1"
      bucket   = terraform_data.bucket.output.bucket
    }
    iceberg = { warehouse = "s3://${terraform_data.bucket.output.bucket}/warehouse" }
    privacy = { require_key = false }
  }
}
