//go:build go1.24

// HTTP/2 over cleartext with prior knowledge (h2c), in the standard library since Go 1.24:
// the transport comparison measures an HTTP/2 client against the same sink. HTTP/1.1 clients
// are served as before; an older Go builds the sink without it.
package main

import "net/http"

func init() {
	configure = func(server *http.Server) {
		var protocols http.Protocols
		protocols.SetHTTP1(true)
		protocols.SetUnencryptedHTTP2(true)
		server.Protocols = &protocols
	}
}
