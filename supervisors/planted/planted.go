// Package planted is a new package in no layer.
package planted
