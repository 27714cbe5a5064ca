// Command authorizer is the Lambda REQUEST authorizer for API Gateway
// (REST: IAM policy; HTTP API: simple response), deciding with the same
// authn and read model as the functions.
package main

import "github.com/trustlog/trustlog/functions/lambda/host"

func main() { host.MainAuthorizer() }
