package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"html/template"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Entry is one guestbook entry.
type Entry struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// app serves the guestbook.
type app struct {
	store   store
	host    string
	storage string
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok guestbook\n") })
	mux.HandleFunc("GET /{$}", a.page)
	mux.HandleFunc("POST /entries", a.form)
	mux.HandleFunc("GET /api/entries", a.list)
	mux.HandleFunc("POST /api/entries", a.add)
	return mux
}

// newEntry checks an entry's fields: a name of 1-64 and a message of
// 1-1000 characters.
func newEntry(name, message string) (Entry, string) {
	name, message = strings.TrimSpace(name), strings.TrimSpace(message)
	switch {
	case name == "" || utf8.RuneCountInString(name) > 64:
		return Entry{}, "name: 1 to 64 characters"
	case message == "" || utf8.RuneCountInString(message) > 1000:
		return Entry{}, "message: 1 to 1000 characters"
	}
	raw := make([]byte, 4)
	rand.Read(raw)
	now := time.Now().UTC()
	// IDs sort by time: the listing is in order of writing.
	return Entry{ID: now.Format("20060102T150405.000000000Z") + "-" + hex.EncodeToString(raw), Name: name, Message: message, At: now}, ""
}

// entryID is what a client may choose as an entry's ID: sent again with
// the same ID, an entry is written once (a retried request after a lost
// answer is no duplicate).
var entryID = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z._-]{0,99}$`)

func (a *app) add(w http.ResponseWriter, r *http.Request) {
	var in struct{ ID, Name, Message string }
	if err := json.NewDecoder(io.LimitReader(r.Body, 16<<10)).Decode(&in); err != nil {
		http.Error(w, "want JSON {\"name\": …, \"message\": …[, \"id\": …]}: "+err.Error(), http.StatusBadRequest)
		return
	}
	e, bad := newEntry(in.Name, in.Message)
	if bad == "" && in.ID != "" {
		if !entryID.MatchString(in.ID) {
			bad = "id: 1 to 100 of A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or digit (IDs sort the listing)"
		}
		e.ID = in.ID
	}
	if bad != "" {
		http.Error(w, bad, http.StatusBadRequest)
		return
	}
	if err := a.store.put(r.Context(), e); err != nil {
		http.Error(w, "storage: "+err.Error(), http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(e)
}

func (a *app) list(w http.ResponseWriter, r *http.Request) {
	es, err := a.store.list(r.Context())
	if err != nil {
		http.Error(w, "storage: "+err.Error(), http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Served-By", a.host)
	json.NewEncoder(w).Encode(es)
}

func (a *app) form(w http.ResponseWriter, r *http.Request) {
	e, bad := newEntry(r.FormValue("name"), r.FormValue("message"))
	if bad != "" {
		http.Error(w, bad, http.StatusBadRequest)
		return
	}
	if err := a.store.put(r.Context(), e); err != nil {
		http.Error(w, "storage: "+err.Error(), http.StatusBadGateway)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>UltraCloud guestbook</title>
<style>body{font-family:sans-serif;max-width:40em;margin:2em auto}li{margin:.4em 0}small{color:#666}</style></head>
<body><h1>UltraCloud guestbook</h1>
<form method="post" action="/entries">
<label>Name <input name="name" id="name" required maxlength="64"></label>
<label>Message <input name="message" id="message" required maxlength="1000"></label>
<button type="submit" id="sign">Sign</button></form>
<ul id="entries">{{range .Entries}}<li class="entry"><b>{{.Name}}</b>: {{.Message}} <small>{{.At.Format "2006-01-02 15:04:05"}}</small></li>{{else}}<li>No entries yet.</li>{{end}}</ul>
<p><small>Served by VM {{.Host}}; entries kept in {{.Storage}}.</small></p>
</body></html>
`))

func (a *app) page(w http.ResponseWriter, r *http.Request) {
	es, err := a.store.list(r.Context())
	if err != nil {
		http.Error(w, "storage: "+err.Error(), http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	pageTmpl.Execute(w, struct {
		Entries       []Entry
		Host, Storage string
	}{es, a.host, a.storage})
}
