output "work_pool" {
  description = "Name of the Prefect work pool (work_pool.name in prefect.yaml)."
  value       = prefect_work_pool.main.name
}

output "api_url" {
  description = "PREFECT_API_URL of the environment."
  value       = var.prefect_api_url
}
