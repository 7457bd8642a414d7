// Package migrations embeds bulkassign's own SQL migrations. River's tables
// are migrated by River's own migrator beside these (see internal/store).
package migrations

import "embed"

// FS holds the numbered migrations, NNN_name.sql, applied in order.
//
//go:embed *.sql
var FS embed.FS
