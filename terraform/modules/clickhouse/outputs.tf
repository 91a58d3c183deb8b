output "url" {
  description = "clickhouse.url for vitalflow (password from VITALFLOW_CLICKHOUSE_PASSWORD, never in the URL)."
  value = (var.variant == "cloud"
    ? "clickhouses://default@${one([for e in clickhouse_service.main[0].endpoints : e.host if e.protocol == "https"])}:8443/default"
  : "clickhouse://vitalflow@clickhouse-${var.name_prefix}.${var.namespace}.svc:8123/default")
}

output "password_secret_arn" {
  description = "Secrets Manager ARN of the password (export it as VITALFLOW_CLICKHOUSE_PASSWORD)."
  value       = var.password_secret_arn
}
