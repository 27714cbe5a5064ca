package tokens

import (
	"time"

	"github.com/trustlog/trustlog/functions/expiry"
)

// DefaultExpiry is the token lifetime when core.remote_token_expiry is
// unset: one day. Tokens are meant to be used right after they are issued;
// a finite default means a forgotten token stops being a way in.
const DefaultExpiry = "1d"

// ParseExpiry validates a value of core.remote_token_expiry and returns the
// instant it names after from: the grammar of package expiry, which the CLI
// shares (space-separated terms such as "1d 12H": S seconds, M minutes, H
// hours, d days, w weeks, m months, y years; each unit at most once).
func ParseExpiry(s string, from time.Time) (time.Time, error) { return expiry.Parse(s, from) }
