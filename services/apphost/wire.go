package apphost

import "enjin/services/appapi"

// The app API's bodies and answers are package appapi's types: ring 0's meta API documents
// them and the CLI reads them. These are the names this package knows them by.
type (
	Release      = appapi.Release
	AppInfo      = appapi.AppInfo
	Share        = appapi.Share
	InstanceInfo = appapi.InstanceInfo
	Attachment   = appapi.Attachment
	LogLine      = appapi.LogLine
	JobEnd       = appapi.JobEnd
	CronStatus   = appapi.CronStatus
	CronRun      = appapi.CronRun
	CronJob      = appapi.CronJob
	Event        = appapi.Event
	Reason       = appapi.Reason
)
