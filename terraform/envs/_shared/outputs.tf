output "vitalflow" {
  description = "Settings for `vitalflow config from-terraform --env-dir .` (addresses and secret ARNs, no secret values)."
  value       = module.stack.vitalflow
}
