package graphsim

// IssuedSecrets returns every access token, refresh token and device code
// the simulator has handed out, and every registered client secret: the
// values a test must never find in logs, output or a database.
func (s *Server) IssuedSecrets() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.access)+len(s.refresh)+len(s.devices)+len(s.clients))
	for v := range s.access {
		out = append(out, v)
	}
	for v := range s.refresh {
		out = append(out, v)
	}
	for v := range s.devices {
		out = append(out, v)
	}
	for _, c := range s.clients {
		if c.Secret != "" {
			out = append(out, c.Secret)
		}
	}
	return out
}
