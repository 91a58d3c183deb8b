# ARNs and ids only: no secret value is ever an output.
output "secret_arns" {
  description = "Secret name => ARN (generated here or supplied in existing_secret_arns)."
  value       = merge({ for name, secret in aws_secretsmanager_secret.generated : name => secret.arn }, var.existing_secret_arns)
}

output "kms_key_arn" {
  description = "ARN of the environment's customer-managed KMS key."
  value       = aws_kms_key.main.arn
}

output "vpc_id" {
  description = "VPC id."
  value       = aws_vpc.main.id
}

output "private_subnet_ids" {
  description = "Ids of the private subnets."
  value       = [for subnet in aws_subnet.private : subnet.id]
}

output "data_security_group_id" {
  description = "Security group of PostgreSQL and ClickHouse."
  value       = aws_security_group.data.id
}

output "workers_security_group_id" {
  description = "Security group of the Prefect workers."
  value       = aws_security_group.workers.id
}
