// Package engine serves berth's subset of the Docker Engine API as a single
// http.Handler, so the same engine answers on a unix socket, over an SSH
// channel or in an httptest server, and the real docker CLI works against it.
//
// It negotiates like dockerd: /_ping (GET and HEAD) answers with Api-Version
// and Ostype headers, every path may carry a /v1.NN prefix that is checked
// against the supported range, errors are JSON {"message": …} with the HTTP
// status dockerd uses for the same condition (404 not found, 409 conflict, 400
// bad parameter, 500 otherwise), and attach/exec take over the connection with
// a 101 upgrade.
package engine
