package appapi

// The answers of the app operations, each a JSON object.
type (
	// AppList answers GET …/apps.
	AppList struct {
		Apps []AppInfo `json:"apps"`
	}
	// ReleaseList answers GET …/apps/{app}/releases.
	ReleaseList struct {
		Releases []Release `json:"releases"`
	}
	// InstanceList answers GET …/apps/{app}/instances and PUT …/scale/{proctype}.
	InstanceList struct {
		Instances []InstanceInfo `json:"instances"`
	}
	// Env answers GET …/apps/{app}/env: values masked unless asked for and allowed.
	Env struct {
		Env    map[string]string `json:"env"`
		Masked bool              `json:"masked"`
	}
	// Files answers POST …/apps/{app}/files: the digests the app's releases have.
	Files struct {
		Have []string `json:"have"`
	}
	// CronList answers GET …/apps/{app}/cron.
	CronList struct {
		Cron []CronStatus `json:"cron"`
	}
)

// The request bodies of the app operations.
type (
	// FilesQuery asks which file digests the app's releases have (POST …/files).
	FilesQuery struct {
		Digests []string `json:"digests"`
	}
	// Rollback makes an earlier release live again (POST …/rollback).
	Rollback struct {
		Release int `json:"release"`
	}
	// Scale runs n instances of a process type (PUT …/scale/{proctype}).
	Scale struct {
		Instances *int `json:"instances" api:"required"`
	}
	// EnvPut replaces the app's environment (PUT …/env).
	EnvPut struct {
		Env map[string]string `json:"env"`
	}
	// EnvPatch sets some variables and unsets others (PATCH …/env).
	EnvPatch struct {
		Set   map[string]string `json:"set"`
		Unset []string          `json:"unset"`
	}
	// Job runs a one-off command in a sandbox of the app (POST …/run).
	Job struct {
		Command string `json:"command"`
	}
)
