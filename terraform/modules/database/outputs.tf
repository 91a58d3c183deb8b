output "host" {
  description = "Host name of the primary (read-write)."
  value       = var.variant == "rds" ? aws_db_instance.primary[0].address : "${local.patroni_name}.${var.namespace}.svc"
}

output "port" {
  description = "PostgreSQL port."
  value       = 5432
}

output "reader_hosts" {
  description = "Host names of the read replicas."
  value       = var.variant == "rds" ? aws_db_instance.replica[*].address : (var.replicas > 0 ? ["${local.patroni_name}-repl.${var.namespace}.svc"] : [])
}

output "database_name" {
  description = "Name of the vitalflow database."
  value       = var.database_name
}

output "admin_secret" {
  description = "Where the admin password is kept: the RDS-managed Secrets Manager ARN, or the operator's Kubernetes secret name."
  value       = var.variant == "rds" ? aws_db_instance.primary[0].master_user_secret[0].secret_arn : "postgres.${local.patroni_name}.credentials.postgresql.acid.zalan.do"
}

output "rds_instance_ids" {
  description = "Identifiers of the RDS primary and replicas (empty for the kubernetes variant)."
  value       = concat(aws_db_instance.primary[*].identifier, aws_db_instance.replica[*].identifier)
}
