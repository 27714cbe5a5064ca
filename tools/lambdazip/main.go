// Command lambdazip packs each <dir>/<function>/bootstrap into
// <dir>/<function>.zip with bootstrap at the zip root and mode 0755, the
// layout the provided.al2023 Lambda runtime expects. It is what
// `task build:lambdas` runs after building the functions.
//
//	go run ./lambdazip ../build/lambda
package main

import (
	"archive/zip"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: lambdazip <dir holding <function>/bootstrap>")
	}
	dir := os.Args[1]
	entries, err := os.ReadDir(dir)
	if err != nil {
		log.Fatalf("lambdazip: %v", err)
	}
	for _, e := range entries {
		bootstrap := filepath.Join(dir, e.Name(), "bootstrap")
		if !e.IsDir() {
			continue
		}
		if _, err := os.Stat(bootstrap); err != nil {
			continue
		}
		out := filepath.Join(dir, e.Name()+".zip")
		if err := pack(bootstrap, out); err != nil {
			log.Fatalf("lambdazip: %s: %v", e.Name(), err)
		}
		fmt.Println(out)
	}
}

func pack(bootstrap, out string) error {
	in, err := os.Open(bootstrap)
	if err != nil {
		return err
	}
	defer in.Close()
	f, err := os.Create(out + ".tmp")
	if err != nil {
		return err
	}
	zw := zip.NewWriter(f)
	h := &zip.FileHeader{Name: "bootstrap", Method: zip.Deflate}
	h.SetMode(0o755)
	w, err := zw.CreateHeader(h)
	if err == nil {
		_, err = io.Copy(w, in)
	}
	if err == nil {
		err = zw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out + ".tmp")
		return err
	}
	return os.Rename(out+".tmp", out)
}
