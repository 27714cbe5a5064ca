package projections

import (
	"maps"
	"time"

	"github.com/trustlog/trustlog/events"
)

// ServerCertificate is the served certificate the log last recorded.
type ServerCertificate struct {
	Fingerprint string
	Chain       string
	Domains     []string
	NotAfter    time.Time
	Source      string
	RotatedAt   time.Time
}

// Renewal is the last step of a served-certificate renewal the log
// recorded.
type Renewal struct {
	Outcome     string
	Reason      string
	Error       string
	Instance    string
	NextAttempt time.Time
	At          time.Time
}

// LastRenewal returns the last renewal step, or nil.
func (m *Model) LastRenewal() *Renewal { return m.renewal }

// ACMEKeyAuth returns the key authorization of a pending ACME HTTP-01
// challenge token.
func (m *Model) ACMEKeyAuth(token string) (string, bool) {
	k, ok := m.challenges[token]
	return k, ok
}

// ServerCertificate returns the last recorded served certificate, or nil.
func (m *Model) ServerCertificate() *ServerCertificate { return m.serverCert }

func (b *Builder) applyACME(p events.Payload, at time.Time) {
	switch e := p.(type) {
	case *events.ACMEChallengePresented:
		b.challengeMap()[e.Token] = e.KeyAuth
	case *events.ACMEChallengeCleaned:
		if _, ok := b.m.challenges[e.Token]; ok {
			delete(b.challengeMap(), e.Token)
		}
	case *events.ACMERenewal:
		b.m.renewal = &Renewal{Outcome: e.Outcome, Reason: e.Reason, Error: e.Error, Instance: e.Instance, NextAttempt: e.NextAttempt, At: at}
	case *events.ServerCertificateRotated:
		b.m.serverCert = &ServerCertificate{Fingerprint: e.Fingerprint, Chain: e.Chain, Domains: nonNil(e.Domains),
			NotAfter: e.NotAfter, Source: e.Source, RotatedAt: at}
	}
}

func (b *Builder) challengeMap() map[string]string {
	if !b.challengesOwned {
		b.m.challenges = maps.Clone(b.m.challenges)
		if b.m.challenges == nil {
			b.m.challenges = map[string]string{}
		}
		b.challengesOwned = true
	}
	return b.m.challenges
}
