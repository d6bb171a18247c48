package main

import "github.com/bpfc/bpfc/compiler"

// contextError carries, besides the error, the program text around the
// instruction it names (--context); run prints it after the error's line.
type contextError struct {
	error
	text string
}

func (e contextError) Unwrap() error { return e.error }

// withContext adds the program around the failing instruction to err when
// n > 0 and err names an instruction of a known program.
func withContext(err error, n int) error {
	if err == nil || n <= 0 {
		return err
	}
	if text := compiler.ErrorContext(err, n); text != "" {
		return contextError{err, text}
	}
	return err
}
