package command

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/trustlog/trustlog/functions/api"
)

// editFields are the keys `config trust edit` takes: the writable fields it
// shows, and the fingerprint, which `config trust show` prints and which
// may be fed back unchanged.
var editFields = []string{"name", "type", "restricted", "projects", "certificate", "description", "fingerprint"}

// applyEdit returns the body of the PUT that applies the YAML the user
// saved (edited) to the entry that was shown. The PUT replaces the whole
// entry, so it carries every field: a key left out keeps the value shown,
// and a key with no value (null) means empty. Nothing is dropped or
// changed without a word:
//   - a key the entry does not have, a key given twice, a value of the
//     wrong kind, or more than one YAML document is an error;
//   - "restricted" must be there, true or false: leaving it out never
//     lifts a restriction;
//   - the name may not be made empty, and the fingerprint, if given, must
//     be the entry's.
func applyEdit(shown api.Certificate, edited []byte) (api.CertificatePut, error) {
	dec := yaml.NewDecoder(bytes.NewReader(edited))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return api.CertificatePut{}, fmt.Errorf("Invalid YAML: %w", err)
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return api.CertificatePut{}, errors.New("Invalid YAML: give one document, the entry")
	}
	var fields []*yaml.Node // key, value, key, value, ...
	if len(doc.Content) == 1 {
		m := doc.Content[0]
		if m.Kind != yaml.MappingNode {
			return api.CertificatePut{}, fmt.Errorf("Invalid YAML: line %d: the entry must be a mapping of its fields (%s)",
				m.Line, strings.Join(editFields, ", "))
		}
		fields = m.Content
	}

	put := shown.Writable()
	put.Projects = append([]string{}, put.Projects...)
	restricted, seen := false, map[string]bool{}
	for i := 0; i+1 < len(fields); i += 2 {
		key, val := fields[i], fields[i+1]
		name := key.Value
		if seen[name] {
			return api.CertificatePut{}, fmt.Errorf("Line %d: %q is given twice", key.Line, name)
		}
		seen[name] = true
		null := val.Kind == yaml.ScalarNode && val.Tag == "!!null"
		var err error
		switch name {
		case "name":
			err = decodeString(val, null, &put.Name)
			if err == nil && put.Name == "" && shown.Name != "" {
				return api.CertificatePut{}, fmt.Errorf("Line %d: the name must not be empty (it is %q)", key.Line, shown.Name)
			}
		case "type":
			err = decodeString(val, null, &put.Type)
		case "certificate":
			err = decodeString(val, null, &put.Certificate)
		case "description":
			err = decodeString(val, null, &put.Description)
		case "restricted":
			if null {
				return api.CertificatePut{}, fmt.Errorf(`Line %d: "restricted" has no value: write "restricted: true" or "restricted: false"`, key.Line)
			}
			err = val.Decode(&put.Restricted)
			restricted = err == nil
		case "projects":
			put.Projects = []string{}
			if !null {
				err = val.Decode(&put.Projects)
			}
		case "fingerprint":
			var fp string
			err = decodeString(val, null, &fp)
			if err == nil && fp != shown.Fingerprint {
				return api.CertificatePut{}, fmt.Errorf("Line %d: the fingerprint cannot be changed (it is %s): put a new certificate in \"certificate\" instead",
					key.Line, shown.Fingerprint)
			}
		default:
			return api.CertificatePut{}, fmt.Errorf("Line %d: unknown field %q (the fields are %s)", key.Line, name, strings.Join(editFields, ", "))
		}
		if err != nil {
			return api.CertificatePut{}, fmt.Errorf("Line %d: invalid %q: %w", val.Line, name, err)
		}
	}
	if !restricted {
		return api.CertificatePut{}, errors.New(`The edited entry has no "restricted": write "restricted: true" or "restricted: false", so that a restriction is never lifted by leaving it out`)
	}
	if put.Projects == nil {
		put.Projects = []string{}
	}
	return put, nil
}

// decodeString decodes a scalar into s; null is the empty string.
func decodeString(val *yaml.Node, null bool, s *string) error {
	if null {
		*s = ""
		return nil
	}
	if val.Kind != yaml.ScalarNode {
		return errors.New("not a single value")
	}
	return val.Decode(s)
}
