package e2e

import (
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"keyhole/internal/client"
	"keyhole/internal/proxy"
	"keyhole/internal/redistest"
)

// The flags the docs and deploy files use are the flags the binaries take:
// README's tables list every flag of each command with its variable, and
// every KEYHOLE_* variable or `--flag` elsewhere names a real one.
func TestDocsMatchTheBinariesFlags(t *testing.T) {
	proxyBin, clientBin := buildBinaries(t)
	flags := map[string]map[string]string{ // command → flag → variable
		"proxy":  helpFlags(t, proxyBin),
		"client": helpFlags(t, clientBin),
	}
	root := filepath.Join("..", "..")
	readme := readDoc(t, filepath.Join(root, "README.md"))

	for cmd, want := range flags {
		got := readmeTable(t, readme, "### `go run ./cmd/"+cmd+"`")
		for name, variable := range want {
			if v, ok := got[name]; !ok {
				t.Errorf("README: --%s of %s is missing from its table", name, cmd)
			} else if v != variable {
				t.Errorf("README: --%s of %s: table says %s, the binary %s", name, cmd, v, variable)
			}
		}
		for name := range got {
			if _, ok := want[name]; !ok {
				t.Errorf("README: the %s table lists --%s, which %s does not take", cmd, name, cmd)
			}
		}
	}

	variables := map[string]bool{}
	names := map[string]bool{"help": true, "version": true}
	for _, fs := range flags {
		for name, variable := range fs {
			variables[variable] = true
			names[name] = true
		}
	}
	// compose.yaml's own settings, substituted by docker compose and never
	// read by a binary.
	composeOnly := []string{"KEYHOLE_CERT_DIR", "KEYHOLE_FRONT_IP", "KEYHOLE_EDGE_SUBNET"}
	docs := []string{filepath.Join(root, "README.md")}
	filepath.WalkDir(filepath.Join(root, "deploy"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			docs = append(docs, path)
		}
		return err
	})
	compose := readDoc(t, filepath.Join(root, "deploy", "compose.yaml"))
	for _, v := range composeOnly {
		if !strings.Contains(compose, "${"+v) {
			t.Errorf("compose.yaml does not use %s", v)
		}
	}
	varRE := regexp.MustCompile(`KEYHOLE_[A-Z_]+`)
	flagRE := regexp.MustCompile("`--([a-z][a-z-]*)")
	for _, path := range docs {
		text := readDoc(t, path)
		for _, v := range varRE.FindAllString(text, -1) {
			if slices.Contains(composeOnly, v) {
				continue
			}
			if !variables[v] {
				t.Errorf("%s: %s is no flag's variable", path, v)
			}
		}
		if strings.HasSuffix(path, ".md") {
			for _, m := range flagRE.FindAllStringSubmatch(text, -1) {
				if !names[m[1]] {
					t.Errorf("%s: `--%s` is no flag of proxy or client", path, m[1])
				}
			}
		}
	}
}

// helpFlags runs bin --help and returns its flags with their variables.
func helpFlags(t *testing.T, bin string) map[string]string {
	t.Helper()
	out, _ := exec.Command(bin, "--help").CombinedOutput() // exits 0 or 2
	re := regexp.MustCompile(`(?m)^  --([a-z][a-z-]*)\b.*\((KEYHOLE_[A-Z_]+)\)$`)
	flags := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = m[2]
	}
	if len(flags) < 3 {
		t.Fatalf("%s --help lists %d flags:\n%s", bin, len(flags), out)
	}
	return flags
}

// readmeTable returns the flag table under heading: flag → variable.
func readmeTable(t *testing.T, readme, heading string) map[string]string {
	t.Helper()
	_, section, ok := strings.Cut(readme, heading+"\n")
	if !ok {
		t.Fatalf("README has no %q", heading)
	}
	if i := strings.Index(section, "\n#"); i >= 0 {
		section = section[:i]
	}
	re := regexp.MustCompile("(?m)^\\| `--([a-z][a-z-]*)` \\| `(KEYHOLE_[A-Z_]+)` \\|")
	rows := map[string]string{}
	for _, m := range re.FindAllStringSubmatch(section, -1) {
		rows[m[1]] = m[2]
	}
	return rows
}

func readDoc(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Every metric family the proxy (with --redis) and the client serve is
// named in README's monitoring list and the operator guide's tables.
func TestDocsNameEveryMetric(t *testing.T) {
	srv := redistest.Start(t)
	b, reg := redisNode(t, srv, redistest.Prefix(t))
	p := startProxy(t, proxy.Config{Bus: b, Registry: reg})
	_, proxyMetrics := get(t, "http://"+p.addr+proxy.MetricsPath, "localhost")
	c, err := client.New(client.Config{Proxy: p.wsURL(), Target: "http://127.0.0.1:1", Key: newKey(t)})
	if err != nil {
		t.Fatal(err)
	}
	ops := httptest.NewServer(c.MetricsHandler())
	defer ops.Close()
	_, clientMetrics := get(t, ops.URL, "")
	root := filepath.Join("..", "..")
	readme := readDoc(t, filepath.Join(root, "README.md"))
	guide := readDoc(t, filepath.Join(root, "deploy", "OPERATORS.md"))
	n := 0
	for line := range strings.Lines(proxyMetrics + clientMetrics) {
		f := strings.Fields(line)
		if len(f) != 4 || f[1] != "TYPE" || !strings.HasPrefix(f[2], "keyhole_") {
			continue
		}
		n++
		for doc, text := range map[string]string{"README.md": readme, "OPERATORS.md": guide} {
			if !strings.Contains(text, "`"+f[2]+"`") {
				t.Errorf("%s does not name the metric %s", doc, f[2])
			}
		}
	}
	if n < 40 {
		t.Fatalf("metrics: got %d keyhole families:\n%s%s", n, proxyMetrics, clientMetrics)
	}
}

// What --host-only-cookies can and cannot do is said wherever the flag is:
// it filters Set-Cookie headers only; script on a tenant's page can still
// set a cookie for the parent domain that every sibling receives (the
// browser test TestBrowserHostOnlyCookiesLimits shows both); isolating
// tenants needs the Public Suffix List or a registrable domain of their
// own. An earlier wording promised that no tunnel could set cookies its
// siblings receive.
func TestDocsSayWhatCookieIsolationCannotDo(t *testing.T) {
	proxyBin, _ := buildBinaries(t)
	help, _ := exec.Command(proxyBin, "--help").CombinedOutput()
	root := filepath.Join("..", "..")
	readme := readDoc(t, filepath.Join(root, "README.md"))
	guide := readDoc(t, filepath.Join(root, "deploy", "OPERATORS.md"))
	// lines returns n lines from the one that starts with prefix.
	lines := func(text, prefix string, n int) string {
		ls := strings.Split(text, "\n")
		for i, l := range ls {
			if strings.HasPrefix(strings.TrimSpace(l), prefix) {
				return strings.Join(ls[i:min(i+n, len(ls))], "\n")
			}
		}
		return ""
	}
	section := func(text, heading string) string {
		i := strings.Index(text, heading)
		if i < 0 {
			return ""
		}
		rest := text[i:]
		for _, next := range []string{"\n- **", "\n#"} {
			if j := strings.Index(rest[len(heading):], next); j >= 0 {
				rest = rest[:len(heading)+j]
			}
		}
		return rest
	}
	for where, text := range map[string]string{
		"proxy --help":                 lines(string(help), "--host-only-cookies", 2), // the flag, then its text
		"README's flag table":          lines(readme, "| `--host-only-cookies`", 1),
		"OPERATORS.md, Shared cookies": section(guide, "**Shared cookies**"),
	} {
		if text == "" {
			t.Errorf("%s: no text about --host-only-cookies", where)
			continue
		}
		flat := strings.Join(strings.Fields(text), " ")
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`Set-Cookie`),
			regexp.MustCompile(`(?i)script|document\.cookie`),
			regexp.MustCompile(`(?i)parent[- ]domain`),
			regexp.MustCompile(`Public Suffix List`),
		} {
			if !want.MatchString(flat) {
				t.Errorf("%s does not say %q:\n%s", where, want, flat)
			}
		}
		if regexp.MustCompile(`(?i)no tunnel (can )?sets? cookies (that )?its sibling`).MatchString(flat) {
			t.Errorf("%s still promises what no proxy can do:\n%s", where, flat)
		}
	}
}
