# Example values: `terraform plan -var-file=example.tfvars`, or copy to terraform.tfvars (keep that out of git).
region                = "us-west-2"
bucket_name           = "example-state-medicaid-handoff"
recipient_role_arn    = "arn:aws:iam::210987654321:role/handoff-reader"
break_glass_role_arn  = "arn:aws:iam::123456789012:role/audit-break-glass"
recipient_prefix      = "deliveries/"
kms_key_deletion_days = 30
noncurrent_days       = 30
audit_retention_days  = 2190 # six years; COMPLIANCE mode cannot be shortened or removed later
tags = {
  project = "handoff"
  data    = "synthetic"
}
