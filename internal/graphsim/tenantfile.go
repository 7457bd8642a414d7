package graphsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	"github.com/bulkassign/bulkassign/internal/assign"
)

// LoadTenantFile registers the configurations and existing assignments a
// JSON file describes and returns the configuration ids it added:
//
//	{"configurations": ["<guid>", ...],
//	 "existing": [{"configurationId": "<guid>", "path": "", "target": {<Graph target>}}, ...]}
func (s *Server) LoadTenantFile(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tenant file: %w", err)
	}
	var t struct {
		Configurations []string `json:"configurations"`
		Existing       []struct {
			ConfigurationID string        `json:"configurationId"`
			Path            string        `json:"path"`
			Target          assign.Target `json:"target"`
		} `json:"existing"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("tenant file %s: %w", path, err)
	}
	var ids []string
	for i, id := range t.Configurations {
		g, err := assign.ParseGUID("configurations["+strconv.Itoa(i)+"]", id)
		if err != nil {
			return nil, fmt.Errorf("tenant file %s: %w", path, err)
		}
		ids = append(ids, g)
	}
	s.AddConfiguration(ids...)
	for i, e := range t.Existing {
		cfg, err := assign.ParseGUID("configurationId", e.ConfigurationID)
		var p assign.Path
		if err == nil {
			p, err = assign.ParsePath(e.Path)
		}
		if err == nil {
			err = e.Target.Validate()
		}
		if err != nil {
			return nil, fmt.Errorf("tenant file %s: existing[%d]: %w", path, i, err)
		}
		s.Preassign(cfg, p, e.Target)
	}
	return ids, nil
}
