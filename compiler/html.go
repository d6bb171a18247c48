package compiler

import (
	"fmt"
	"html"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bpfc/bpfc/ir"
)

// HTMLReport writes a self-contained HTML page (inline CSS and JavaScript,
// nothing fetched from the network) that shows what each pass did to a
// program, in the spirit of Go's GOSSAFUNC ssa.html:
//
//   - a header with the program, the target, the number of layout passes
//     of the backend and a table of the passes with their timing, the
//     instruction counts before and after and the number of changed
//     instructions;
//   - one column with the program as loaded, then one column per pass with
//     the program as it stood after that pass, changed instructions
//     highlighted and inserted ones in italics;
//     (a pass that changed nothing is folded to its heading; a click on a
//     heading folds or unfolds its column);
//   - a last column with the x86 listing (as Listing writes it), exception
//     table entries marked.
//
// Every instruction carries its original index (ir.Aux.OrigIndex) in a
// data-o attribute: clicking an instruction (or hovering it) highlights
// its counterparts in every column, including the x86 code it became.
// Clicking a C source line (objects with line info) highlights that line
// and every instruction it produced, in every column. The page acts on a
// URL fragment "#sel=N" as if original instruction N had been clicked, and
// on "#line=N" for the N-th distinct C line (data-l), which is how its
// browser test selects them.
//
// The pass columns come from r.Passes.Snapshots, so compile with
// Options.DumpAfter = []string{"all"} (a pass without a snapshot has a row
// in the timing table but no column). Without machine code (NoBackend)
// the x86 column is left out.
func HTMLReport(w io.Writer, r *Result) error { return HTMLReports(w, []*Result{r}) }

// HTMLReports is HTMLReport for several programs (those of one object, say)
// in one page: a section per program, each with its header and columns,
// and a list of the programs at the top. Selection stays within a
// program; the fragment "#K:sel=N" (or "#K:line=N") acts on the K-th
// program (0-based), "#sel=N" on the first.
func HTMLReports(w io.Writer, results []*Result) error {
	if len(results) == 0 {
		return fmt.Errorf("no program to report")
	}
	b := &strings.Builder{}
	title := fmt.Sprintf("%s: %s", filepath.Base(results[0].Input.File), results[0].Input.Name)
	if len(results) > 1 {
		title = fmt.Sprintf("%s: %d programs", filepath.Base(results[0].Input.File), len(results))
	}
	fmt.Fprintf(b, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>bpfc: %s</title>\n<style>%s</style>\n</head>\n<body>\n", esc(title), reportCSS)
	if len(results) > 1 {
		b.WriteString("<nav>programs:")
		for k, r := range results {
			fmt.Fprintf(b, " <a href=\"#prog-%d\">%s</a>", k, esc(filepath.Base(r.Input.File)+": "+r.Input.Name))
		}
		b.WriteString("</nav>\n")
	}
	for k, r := range results {
		if err := reportProgram(b, k, r); err != nil {
			if len(results) > 1 {
				return fmt.Errorf("%s: %w", r.Input.Name, err)
			}
			return err
		}
	}
	b.WriteString("<script>" + reportJS + "</script>\n</body>\n</html>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// reportProgram writes the section of program k.
func reportProgram(b *strings.Builder, k int, r *Result) error {
	var rows []listRow
	if r.Image != nil {
		var err error
		if rows, err = listingRows(r); err != nil {
			return err
		}
	}
	title := fmt.Sprintf("%s: %s", filepath.Base(r.Input.File), r.Input.Name)
	fmt.Fprintf(b, "<div class=\"prog\" id=\"prog-%d\">\n", k)

	// Header: program, target, layout passes, pass timing.
	fmt.Fprintf(b, "<header>\n<h1>bpfc: %s</h1>\n<p class=\"summary\">", esc(title))
	if r.Input.Section != "" {
		fmt.Fprintf(b, "section %s, ", esc(r.Input.Section))
	}
	fmt.Fprintf(b, "%d instructions loaded, %d after the passes, target %s", r.Input.Prog.Len(), r.Prog.Len(), esc(r.Target.Name))
	if r.Image != nil {
		fmt.Fprintf(b, ", %d functions, %d bytes of x86 code, <span class=\"layout-passes\">%d</span> layout passes", len(r.Image.Funcs), len(r.Image.Code()), r.Image.Passes)
	}
	b.WriteString("</p>\n<table class=\"timing\">\n<tr><th>pass</th><th>time</th><th>instructions</th><th>changed</th></tr>\n")
	var total time.Duration
	if r.Passes != nil {
		for _, st := range r.Passes.Stats {
			total += st.Duration
			fmt.Fprintf(b, "<tr data-pass=\"%s\"><td>%s</td><td class=\"num\">%s</td><td class=\"num\">%d &rarr; %d</td><td class=\"num\">%d</td></tr>\n",
				esc(st.Pass), esc(st.Pass), st.Duration, st.InsnsBefore, st.InsnsAfter, st.Changed)
		}
	}
	fmt.Fprintf(b, "<tr><td>total</td><td class=\"num\">%s</td><td></td><td></td></tr>\n</table>\n", total)
	b.WriteString("<p class=\"help\">Click an instruction (or hover it) to highlight it in every column and the x86 code it became, or a C line for all its instructions; " +
		"<span class=\"i ch\">changed by the pass</span> <span class=\"i ins\">inserted</span> <span class=\"x ex\">covered by the exception table</span>. " +
		"<span class=\"status\"></span></p>\n</header>\n<main class=\"columns\">\n")

	// Program columns.
	lines := lineIDs{}
	lines.column(b, "input", "loaded", r.Input.Prog, nil)
	if r.Passes != nil {
		for _, s := range r.Passes.Snapshots {
			lines.column(b, s.Pass, "after "+s.Pass, s.Program, s.Changed)
		}
	}

	// The x86 listing.
	if r.Image != nil {
		b.WriteString("<section class=\"col\" data-pass=\"x86\"><h2>x86-64</h2><div class=\"code\">\n")
		inForce := make([]*ir.SourceLine, r.Prog.Len()) // the C line of each instruction
		var l *ir.SourceLine
		for i, a := range r.Prog.Aux {
			if a.Line != nil {
				l = a.Line
			}
			inForce[i] = l
		}
		for _, row := range rows {
			if row.kind == rowBlank {
				continue
			}
			attr := ""
			if row.insn >= 0 && row.insn < r.Prog.Len() {
				attr = origAttr(r.Prog.Aux[row.insn])
			}
			cls := map[int]string{rowHeader: "note", rowFunc: "fn", rowNote: "note", rowSource: "src", rowBPF: "i", rowX86: "x"}[row.kind]
			if row.extable {
				cls += " ex"
			}
			if row.kind == rowSource {
				attr = "" // a C line is not an instruction
			}
			if row.insn >= 0 && row.insn < r.Prog.Len() {
				attr += lines.attr(inForce[row.insn])
			}
			fmt.Fprintf(b, "<div class=\"%s\"%s>%s</div>\n", cls, attr, esc(row.text))
		}
		b.WriteString("</div></section>\n")
	}
	b.WriteString("</main>\n</div>\n")
	return nil
}

// lineIDs numbers the C source lines of a report ("file:line"), in the
// order they first appear, for the data-l attributes that link a C line
// to the instructions it produced in every column.
type lineIDs map[string]int

// attr is the data-l attribute of an element from line l ("" for none).
func (ids lineIDs) attr(l *ir.SourceLine) string {
	if l == nil {
		return ""
	}
	k := fmt.Sprintf("%s:%d", l.File, l.Line)
	id, ok := ids[k]
	if !ok {
		id = len(ids)
		ids[k] = id
	}
	return fmt.Sprintf(" data-l=\"%d\"", id)
}

// column writes one program column; changed marks instructions the pass
// changed (nil: none).
func (ids lineIDs) column(b *strings.Builder, pass, heading string, p *ir.Program, changed []bool) {
	extra := ""
	if changed != nil && !slices.Contains(changed, true) {
		// Nothing changed: folded to its heading (a click unfolds it).
		extra = " folded"
		heading += " (no change)"
	}
	fmt.Fprintf(b, "<section class=\"col\" data-pass=\"%s\"><h2 class=\"head%s\">%s</h2><div class=\"code\">\n", esc(pass), extra, esc(heading))
	po := PrintOptions(p)
	var last *ir.SourceLine
	for i := 0; i < p.Len(); i++ {
		a := p.Aux[i]
		if l := a.Line; l != nil && (last == nil || l.Line != last.Line || l.File != last.File) {
			fmt.Fprintf(b, "<div class=\"src\"%s>; %s:%d: %s</div>\n", ids.attr(l), esc(filepath.Base(l.File)), l.Line, esc(strings.TrimSpace(l.Text)))
			last = l
		}
		cls := "i"
		if i < len(changed) && changed[i] {
			cls += " ch"
		}
		if a.OrigIndex < 0 {
			cls += " ins"
		}
		fmt.Fprintf(b, "<div class=\"%s\"%s%s>%5d: %s%s</div>\n", cls, origAttr(a), ids.attr(last), i, esc(p.KernelText(i, po)), auxNote(a))
		if p.Insns[i].IsLdImm64() {
			i++
		}
	}
	b.WriteString("</div></section>\n")
}

// auxNote shows the aux data a pass may change without changing the
// instruction's text, so that a changed line always shows why.
func auxNote(a ir.Aux) string {
	var notes []string
	if a.ZextDst {
		notes = append(notes, "zext_dst")
	}
	if a.PtrType != ir.PtrUnknown {
		notes = append(notes, "ptr="+a.PtrType.String())
	}
	if len(notes) == 0 {
		return ""
	}
	return "<span class=\"aux\">  ; " + esc(strings.Join(notes, " ")) + "</span>"
}

// origAttr is the data-o attribute linking an instruction to its
// counterparts (none for inserted instructions).
func origAttr(a ir.Aux) string {
	if a.OrigIndex < 0 {
		return ""
	}
	return fmt.Sprintf(" data-o=\"%d\"", a.OrigIndex)
}

func esc(s string) string { return html.EscapeString(s) }

const reportCSS = `
body { font-family: sans-serif; margin: 0; font-size: 13px; }
header { padding: 6px 12px; border-bottom: 1px solid #bbb; background: #f6f6f6; }
h1 { font-size: 16px; margin: 4px 0; }
h2 { font-size: 13px; margin: 0; padding: 4px 6px; background: #e4e4ee; position: sticky; top: 0; }
.timing { border-collapse: collapse; margin: 4px 0; }
.timing td, .timing th { border: 1px solid #ccc; padding: 1px 6px; text-align: left; }
.timing td.num { text-align: right; font-family: monospace; }
.help { color: #444; margin: 4px 0; }
nav { padding: 6px 12px; background: #e8e8f0; }
.prog + .prog { border-top: 3px solid #889; }
main { display: flex; align-items: flex-start; overflow-x: auto; }
.col { flex: 0 0 auto; border-right: 1px solid #ccc; max-height: 100vh; overflow-y: auto; }
.code { font-family: monospace; padding: 2px 6px; font-size: 12px; }
.code div { white-space: pre; }
.aux { color: #888; }
.src { color: #2a7a2a; }
.fn { font-weight: bold; margin-top: 6px; }
.note { color: #777; }
.i, .x { cursor: pointer; }
.x { color: #333; }
h2.head { cursor: pointer; }
h2.folded { writing-mode: vertical-lr; }
h2.folded + .code { display: none; }
.ch { background: #fff3b0; }
.ins { font-style: italic; }
.ex { text-decoration: underline wavy #c33; }
.hov { background: #d8ecff; }
.sel { background: #ffb45e; outline: 1px solid #d87000; }
`

const reportJS = `
(function () {
  // The selection is a program section and an attribute selector within
  // it: [data-o="N"] for original instruction N, [data-l="N"] for C line N.
  var cur = null, curRoot = null;
  function key(e) {
    return e.dataset.o !== undefined ? '[data-o="' + e.dataset.o + '"]' : '[data-l="' + e.dataset.l + '"]';
  }
  function all(root, k) { return root.querySelectorAll(k); }
  function mark(root, k, cls, on) { all(root, k).forEach(function (e) { e.classList.toggle(cls, on); }); }
  function target(ev) {
    return ev.target.closest("[data-o]") || ev.target.closest(".src[data-l]");
  }
  function status(root) {
    var s = root.querySelector(".status");
    if (cur === null) { s.textContent = ""; root.removeAttribute("data-selected"); return; }
    var cols = {};
    all(root, cur).forEach(function (e) { cols[e.closest(".col").dataset.pass] = 1; });
    var m = /data-(o|l)="(\d+)"/.exec(cur);
    root.setAttribute("data-selected", m[1] === "o" ? m[2] : "line:" + m[2]);
    s.textContent = (m[1] === "o" ? "instruction " : "C line #") + m[2] + ": " + all(root, cur).length + " lines in " + Object.keys(cols).length + " columns";
  }
  function toggle(root, k) {
    if (cur !== null && curRoot === root && cur === k) {
      mark(root, k, "sel", false);
      cur = null;
      status(root);
      return;
    }
    if (cur !== null) {
      mark(curRoot, cur, "sel", false);
      var old = curRoot;
      cur = null;
      status(old);
    }
    cur = k; curRoot = root;
    mark(root, k, "sel", true);
    status(root);
  }
  document.addEventListener("click", function (ev) {
    if (ev.target.matches("h2.head")) { ev.target.classList.toggle("folded"); return; }
    var e = target(ev);
    if (e) toggle(e.closest(".prog"), key(e));
  });
  document.addEventListener("mouseover", function (ev) {
    var e = target(ev);
    if (e) mark(e.closest(".prog"), key(e), "hov", true);
  });
  document.addEventListener("mouseout", function (ev) {
    var e = target(ev);
    if (e) mark(e.closest(".prog"), key(e), "hov", false);
  });
  var m = /^#(?:(\d+):)?(sel|line)=(\d+)$/.exec(location.hash);
  if (m) {
    var root = document.getElementById("prog-" + (m[1] || "0"));
    var e = root && root.querySelector(m[2] === "sel" ? '[data-o="' + m[3] + '"]' : '.src[data-l="' + m[3] + '"]');
    if (e) e.click();
  }
})();
`
