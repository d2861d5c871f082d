package apphost

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Bounds on an app's scheduled jobs.
const (
	maxCronJobs     = 16
	maxCronSchedule = 128
	minCronEvery    = time.Second // @every below it is refused
)

// cronParser reads standard five-field schedules and the descriptors (@hourly, @every 30s).
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// checkCron refuses scheduled jobs that could not run as written: too many, a bad name, a
// schedule cron cannot read (or @every faster than once a second), a bad command.
func checkCron(jobs map[string]CronJob) error {
	if len(jobs) > maxCronJobs {
		return jsonErr("cron", "%d jobs; at most %d", len(jobs), maxCronJobs)
	}
	for _, name := range keysOf(jobs) {
		j, f := jobs[name], "cron."+fieldKey(name)
		if err := checkType(name); err != nil {
			return jsonErr(f, "job %s: want a lowercase letter, then up to 30 of a-z, 0-9, _ and -", quote(name))
		}
		if err := checkSchedule(j.Schedule); err != nil {
			return jsonErr(f+".schedule", "%v", err)
		}
		if err := checkCommand(j.Command); err != nil {
			return jsonErr(f+".command", "%v", err)
		}
	}
	return nil
}

func checkSchedule(s string) error {
	if s == "" || len(s) > maxCronSchedule {
		return fmt.Errorf("want a cron schedule of 1 to %d bytes", maxCronSchedule)
	}
	sched, err := cronParser.Parse(s)
	if err != nil {
		return fmt.Errorf("%s: %v", quote(s), err)
	}
	if every, ok := sched.(cron.ConstantDelaySchedule); ok && every.Delay < minCronEvery {
		return fmt.Errorf("%s: at most once a second", quote(s))
	}
	if strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=") {
		return fmt.Errorf("%s: schedules run in the host's time zone; give none", quote(s))
	}
	return nil
}
