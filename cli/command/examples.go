package command

// The Example sections of the main commands. Each command line starts
// with "  trustlog "; the line after it says what it does. A test parses
// every such line against the command tree, so an example cannot name a
// command or flag that does not exist.

const exampleRemoteAdd = `  trustlog remote add mysrv https://192.0.2.10:8443 --token <token>
      Add a server with a trust token its administrator issued
      (trustlog config trust add --name <client> on the server).
  trustlog remote add mysrv <token>
      The same: the token names the server's addresses and certificate.
  trustlog remote add mysrv https://192.0.2.10:8443 --accept-certificate
      Add a server that already trusts this client's certificate
      (trustlog remote get-client-certificate prints it).
  trustlog remote add sso https://trust.example.com --auth-type oidc
      Add a server you log in to with OpenID Connect.`

const exampleTrustAdd = `  trustlog config trust add --name laptop
      Issue a trust token for a client called laptop.
  trustlog config trust add mysrv: --name ci --restricted --projects web -q
      Issue a token for a client restricted to the project web; print only the token.
  trustlog config trust add client.crt --name alice
      Trust the certificate in client.crt.`

const exampleTrustList = `  trustlog config trust list
      List the trusted certificates of the default remote.
  trustlog config trust list mysrv: -c nfe -f csv
      Name, fingerprint and expiry date of each entry of mysrv, as CSV.
  trustlog config trust list -f json
      The whole entries, full fingerprints included.
  trustlog config trust list --at 2026-12-01T00:00:00Z
      The trust store as it was at that time.`

const exampleTrustRemove = `  trustlog config trust remove 2bd4ba7ed4a1
      Stop trusting the certificate whose fingerprint starts with 2bd4ba7ed4a1.
  trustlog config trust remove mysrv: 2bd4ba7ed4a1
      The same on the remote mysrv.`

const exampleTrustEdit = `  trustlog config trust edit 2bd4ba7ed4a1
      Edit the entry in $VISUAL or $EDITOR.
  trustlog config trust show 2bd4ba7ed4a1 > entry.yaml
      Save an entry, edit entry.yaml, then:
  trustlog config trust edit 2bd4ba7ed4a1 < entry.yaml
      Send it back (stdin is read when it is not a terminal).`

const exampleConfigSet = `  trustlog config set core.remote_token_expiry 1d
      Trust tokens issued from now on expire after a day.
  trustlog config set mysrv: user.team=blue user.site=paris
      Set several keys of the remote mysrv at once.`

const exampleConfigGet = `  trustlog config get core.https_address
      Print the address the default remote listens on.
  trustlog config get mysrv: core.remote_token_expiry
      Print a key of the remote mysrv.`

const exampleMonitor = `  trustlog monitor
      Follow trust changes from now on, until interrupted.
  trustlog monitor mysrv: --since 1 --type certificate.trusted,certificate.removed
      Every certificate trusted or removed since the first event.
  trustlog monitor -f json
      One JSON document per event, for scripts.`

const exampleIdentityGrant = `  trustlog auth identity grant oidc/alice@example.com admin
      Give an OpenID Connect user full access.
  trustlog auth identity grant mysrv:tls/ci restricted --projects web,db
      Restrict the TLS identity ci of mysrv to the projects web and db.`

const exampleQuery = `  trustlog query /1.0
      The server as GET /1.0 describes it (the reply's metadata).
  trustlog query --raw /1.0/metrics
      The Prometheus metrics, as the server sends them.
  trustlog query -X DELETE mysrv:/1.0/certificates/2bd4ba7ed4a1
      Send any request to a remote.`
