// Command api is the Lambda serving every function's routes at once, for
// gateways that send all paths to one target (an ALB's default action).
package main

import "github.com/trustlog/trustlog/functions/lambda/host"

func main() { host.Main() }
