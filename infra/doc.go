// Package infra holds the AWS deployment of Trustlog (template.yaml: SAM,
// HTTP API with mutual TLS; alb.yaml: CloudFormation, ALB in mTLS
// passthrough mode) and the test that checks their structure. It has no
// code of its own.
package infra
