# A Kubernetes work pool and the workers that poll it; each flow run becomes a Job with the
# vitalflow image and the environment's config.
locals {
  # Each flow run is a Job: the vitalflow image, the environment's config file from the ConfigMap,
  # and its secrets from the runtime secret (synced from Secrets Manager), hardened like the
  # workers. Prefect fills in the command and the run's own environment.
  job_manifest = {
    apiVersion = "batch/v1"
    kind       = "Job"
    metadata   = { namespace = var.namespace, labels = var.tags, generateName = "{{ name }}-" }
    spec = {
      backoffLimit            = 0
      ttlSecondsAfterFinished = 86400
      template = {
        spec = {
          serviceAccountName           = kubernetes_service_account.workers.metadata[0].name
          automountServiceAccountToken = false
          restartPolicy                = "Never"
          securityContext              = { runAsNonRoot = true, runAsUser = 10001, seccompProfile = { type = "RuntimeDefault" } }
          containers = [{
            name            = "prefect-job"
            image           = var.image
            imagePullPolicy = "Always"
            args            = "{{ command }}"
            env             = "{{ env }}"
            envFrom         = var.runtime_secret_name == "" ? [] : [{ secretRef = { name = var.runtime_secret_name } }]
            resources       = { requests = { cpu = var.job_cpu, memory = var.job_memory }, limits = { memory = var.job_memory } }
            volumeMounts    = [{ name = "config", mountPath = "/app/config/deploy", readOnly = true }, { name = "tmp", mountPath = "/tmp" }]
            securityContext = { allowPrivilegeEscalation = false, readOnlyRootFilesystem = true, capabilities = { drop = ["ALL"] } }
          }]
          volumes = [{ name = "config", configMap = { name = var.config_map } }, { name = "tmp", emptyDir = {} }]
        }
      }
    }
  }
}

resource "prefect_work_pool" "main" {
  name              = var.work_pool_name
  type              = "kubernetes"
  paused            = false
  concurrency_limit = var.pool_concurrency
  base_job_template = jsonencode({
    job_configuration = {
      command                   = "{{ command }}"
      env                       = { VITALFLOW_CONFIG = "/app/config/deploy/vitalflow.toml", PREFECT_HOME = "/tmp/prefect" }
      labels                    = var.tags
      name                      = "{{ name }}"
      namespace                 = var.namespace
      job_manifest              = local.job_manifest
      stream_output             = true
      job_watch_timeout_seconds = 86400
      pod_watch_timeout_seconds = 300
    }
    variables = {
      type = "object"
      properties = {
        command = { type = "string", title = "Command", description = "Set by Prefect for each flow run." }
        name    = { type = "string", title = "Name", description = "Job name prefix, set by Prefect." }
      }
    }
  })
}

resource "kubernetes_service_account" "workers" {
  metadata {
    name      = "${var.name_prefix}-prefect-worker"
    namespace = var.namespace
    labels    = var.tags
  }
  automount_service_account_token = false
}

resource "kubernetes_deployment" "workers" {
  metadata {
    name      = "${var.name_prefix}-prefect-worker"
    namespace = var.namespace
    labels    = var.tags
  }
  spec {
    replicas = var.workers
    selector {
      match_labels = { app = "${var.name_prefix}-prefect-worker" }
    }
    template {
      metadata {
        labels = merge(var.tags, { app = "${var.name_prefix}-prefect-worker" })
      }
      spec {
        service_account_name            = kubernetes_service_account.workers.metadata[0].name
        automount_service_account_token = false
        security_context {
          run_as_non_root = true
          run_as_user     = 10001
          run_as_group    = 10001
          fs_group        = 10001
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }
        container {
          name              = "worker"
          image             = var.image
          image_pull_policy = "Always"
          command           = ["prefect", "worker", "start", "--pool", prefect_work_pool.main.name, "--type", "kubernetes", "--with-healthcheck"]
          env {
            name  = "PREFECT_API_URL"
            value = var.prefect_api_url
          }
          env {
            name  = "PREFECT_WORKER_WEBSERVER_PORT"
            value = "8080"
          }
          env {
            name  = "PREFECT_HOME"
            value = "/tmp/prefect"
          }
          dynamic "volume_mount" {
            for_each = var.api_key_secret_name == "" ? [] : [1]
            content {
              name       = "prefect-api-key"
              mount_path = "/var/run/secrets/prefect"
              read_only  = true
            }
          }
          volume_mount {
            name       = "config"
            mount_path = "/app/config/deploy"
            read_only  = true
          }
          volume_mount {
            name       = "tmp"
            mount_path = "/tmp"
          }
          resources {
            requests = { cpu = var.worker_cpu, memory = var.worker_memory }
            limits   = { cpu = var.worker_cpu, memory = var.worker_memory }
          }
          liveness_probe {
            http_get {
              path = "/health"
              port = 8080
            }
            initial_delay_seconds = 30
            period_seconds        = 30
          }
          readiness_probe {
            http_get {
              path = "/health"
              port = 8080
            }
            initial_delay_seconds = 10
            period_seconds        = 15
          }
          security_context {
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            run_as_non_root            = true
            run_as_user                = 10001
            capabilities {
              drop = ["ALL"]
            }
          }
        }
        # The API key is a file, never an environment value in the pod spec: the image's entry
        # point (infra/compose/entrypoint.sh) exports it to the worker process only.
        dynamic "volume" {
          for_each = var.api_key_secret_name == "" ? [] : [1]
          content {
            name = "prefect-api-key"
            secret {
              secret_name  = var.api_key_secret_name
              default_mode = "0400"
            }
          }
        }
        volume {
          name = "config"
          config_map {
            name = var.config_map
          }
        }
        volume {
          name = "tmp"
          empty_dir {}
        }
      }
    }
  }
}
