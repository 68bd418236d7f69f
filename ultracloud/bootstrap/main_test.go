package bootstrap

import (
	"testing"

	"github.com/photoncloud/testkit/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }
