package pipeline

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/bpfc/bpfc/ir"
)

// funcPass adapts a function to Pass for tests.
type funcPass struct {
	name string
	run  func(p *ir.Program, ctx *Context) error
}

func (f funcPass) Name() string                          { return f.name }
func (f funcPass) Run(p *ir.Program, ctx *Context) error { return f.run(p, ctx) }

func prog() *ir.Program {
	return ir.NewProgram("t", []ir.Instruction{
		{Op: uint8(ir.ClassALU64) | uint8(ir.ALUMov), Dst: ir.R0, Imm: 1},
		{Op: ir.OpExit},
	})
}

func TestOrderAndHooks(t *testing.T) {
	var order []string
	mk := func(name string) Pass {
		return funcPass{name, func(*ir.Program, *Context) error { order = append(order, name); return nil }}
	}
	pl := New(mk("a"), mk("b"), mk("c"))
	require.NoError(t, pl.InsertAfter("a", mk("a2")))
	require.NoError(t, pl.InsertBefore("a", mk("a0")))
	require.NoError(t, pl.Replace("c", mk("c2")))
	require.NoError(t, pl.SetEnabled("b", false))
	require.Error(t, pl.InsertAfter("nope", mk("x")))
	assert.Equal(t, []string{"a0", "a", "a2", "b", "c2"}, pl.Names())

	res, err := pl.Run(prog(), nil)
	require.NoError(t, err)
	assert.Equal(t, []string{"a0", "a", "a2", "c2"}, order, "disabled pass skipped")
	require.Len(t, res.Stats, 4)
	assert.Equal(t, "c2", res.Stats[3].Pass)

	require.NoError(t, pl.Remove("a2"))
	assert.Equal(t, []string{"a0", "a", "b", "c2"}, pl.Names())
}

func TestErrorNamesPass(t *testing.T) {
	boom := errors.New("boom")
	pl := New(funcPass{"bad", func(*ir.Program, *Context) error { return boom }})
	_, err := pl.Run(prog(), nil)
	require.ErrorIs(t, err, boom)
	assert.Equal(t, "pass bad: boom", err.Error())
}

func TestDebugLogsAndDumps(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	// The pass rewrites r0 = 1 into r0 = 2 and appends nothing.
	change := funcPass{"change", func(p *ir.Program, _ *Context) error {
		p.Insns[0].Imm = 2
		return nil
	}}
	keep := funcPass{"keep", func(*ir.Program, *Context) error { return nil }}
	pl := New(change, keep)
	pl.DumpAfter = []string{"change"}
	res, err := pl.Run(prog(), &Context{Logger: zap.New(core)})
	require.NoError(t, err)

	passLogs := logs.FilterMessage("pass").All()
	require.Len(t, passLogs, 2)
	assert.Equal(t, "change", passLogs[0].ContextMap()["pass"])
	assert.Equal(t, int64(1), passLogs[0].ContextMap()["changed"])
	assert.Equal(t, int64(0), passLogs[1].ContextMap()["changed"])

	dumps := logs.FilterMessage("dump").All()
	require.Len(t, dumps, 1, "only the named pass is dumped")
	require.Len(t, res.Snapshots, 1)
	assert.Equal(t, []bool{true, false}, res.Snapshots[0].Changed)
	assert.Equal(t, int32(2), res.Snapshots[0].Program.Insns[0].Imm)

	pl.DumpAfter = []string{"missing"}
	_, err = pl.Run(prog(), nil)
	require.Error(t, err)
}

func TestRegistry(t *testing.T) {
	var r Registry
	r.Register("x", func() Pass { return funcPass{"x", nil} })
	p, err := r.New("x")
	require.NoError(t, err)
	assert.Equal(t, "x", p.Name())
	_, err = r.New("y")
	assert.EqualError(t, err, `unknown pass "y"`)
	assert.Equal(t, []string{"x"}, r.Names())
}
