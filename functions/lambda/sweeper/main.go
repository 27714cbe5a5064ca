// Command sweeper is the scheduled Lambda (EventBridge) that expires trust
// tokens whose expiry has passed, as trustlogd's sweeper loop does.
package main

import "github.com/trustlog/trustlog/functions/lambda/host"

func main() { host.MainSweeper() }
