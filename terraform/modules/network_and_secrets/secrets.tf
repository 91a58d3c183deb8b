# Secrets live in Secrets Manager only. Generated values are ephemeral: they are written through
# write-only attributes, so they never reach the state, an output or a variables file.
locals {
  # name => generated length; pseudonym_key is the HMAC key of the pseudonyms (VITALFLOW_PSEUDONYM_KEY).
  secrets = {
    pseudonym_key       = 64
    db_app              = 32
    db_analyst          = 32
    db_reidentifier     = 32
    clickhouse_password = 32
    prefect_api_key     = 48
  }
  generated = { for name, length in local.secrets : name => length if !contains(keys(var.existing_secret_arns), name) }
}

ephemeral "random_password" "generated" {
  for_each = local.generated
  length   = each.value
  # Letters and digits only: the values go into URLs and passfiles unescaped.
  special     = false
  min_upper   = 1
  min_lower   = 1
  min_numeric = 1
}

resource "aws_secretsmanager_secret" "generated" {
  #checkov:skip=CKV2_AWS_57:Automatic rotation would break pseudonyms and connections; rotate by bumping secret_versions (and `vitalflow rekey` for the key).
  for_each                = local.generated
  name                    = "${var.name_prefix}/${each.key}"
  description             = "vitalflow ${each.key} (generated; never in Terraform state)"
  kms_key_id              = aws_kms_key.main.arn
  recovery_window_in_days = var.secret_recovery_days
  tags                    = var.tags
}

resource "aws_secretsmanager_secret_version" "generated" {
  for_each                 = local.generated
  secret_id                = aws_secretsmanager_secret.generated[each.key].id
  secret_string_wo         = ephemeral.random_password.generated[each.key].result
  secret_string_wo_version = lookup(var.secret_versions, each.key, 1)
}
