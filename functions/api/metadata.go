package api

import "slices"

// MetadataConfiguration is GET /1.0/metadata/configuration (API extension
// metadata_configuration, as LXD and Incus serve it): the configuration
// keys a server knows, by entity ("server") and group ("core", "acme",
// "oidc"). Each group lists its keys as one-entry maps, upstream's shape.
type MetadataConfiguration struct {
	Configs map[string]map[string]MetadataConfigGroup `json:"configs" yaml:"configs"`
}

// MetadataConfigGroup is a group of configuration keys.
type MetadataConfigGroup struct {
	Keys []map[string]MetadataConfigKey `json:"keys" yaml:"keys"`
}

// MetadataConfigKey describes one configuration key.
type MetadataConfigKey struct {
	// Scope is "global" (shared by every member) or "local" (one value
	// per member).
	Scope string `json:"scope,omitempty" yaml:"scope,omitempty"`
	// Type is "string", "bool" or "integer".
	Type string `json:"type" yaml:"type"`
	// Default describes the value in force when the key is unset.
	Default string `json:"defaultdesc,omitempty" yaml:"defaultdesc,omitempty"`
	// Description is a one-line description.
	Description string `json:"shortdesc" yaml:"shortdesc"`
	// LongDescription says more, or is empty.
	LongDescription string `json:"longdesc" yaml:"longdesc"`
}

// ServerKeys returns the names of the server entity's keys, sorted.
func (m MetadataConfiguration) ServerKeys() []string {
	var out []string
	for _, g := range m.Configs["server"] {
		for _, k := range g.Keys {
			for name := range k {
				out = append(out, name)
			}
		}
	}
	slices.Sort(out)
	return out
}
