package console_test

import (
	"testing"

	"github.com/bulkassign/bulkassign/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
