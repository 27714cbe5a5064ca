// Command metrics is the Lambda of the metrics function (see functions/service):
// configuration from the environment (functions/lambda/host), then
// lambda.Start behind the gateway mode's adapter.
package main

import (
	"github.com/trustlog/trustlog/functions/lambda/host"
	"github.com/trustlog/trustlog/functions/service"
)

func main() { host.Main(service.FunctionMetrics) }
