# The local environment needs no provider download: it uses only the built-in terraform_data
# resource, whose provisioners run vitalflow's own bootstrap against the embedded services.
terraform {
  required_version = ">= 1.6"
}
