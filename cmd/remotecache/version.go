package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// buildVersion is what the binary knows of its own build.
type buildVersion struct {
	// Main is the version of the command's module: a tag or pseudo-version
	// when built with go install …@version, "(devel)" from a work tree.
	Main string
	// Library is the version of the library module it was built with,
	// and where a replace directive took it from, if one did.
	Library, LibraryReplace string
	// Revision is the VCS revision the build was made from, if the build
	// recorded one ("+dirty" when the work tree had changes).
	Revision string
	Go       string
	Platform string
}

const libraryModule = "github.com/buildcache/remotecache"

// version reads the build information of the binary.
func version() buildVersion {
	v := buildVersion{Main: "(devel)", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if info.Main.Version != "" {
		v.Main = info.Main.Version
	}
	for _, d := range info.Deps {
		if d.Path != libraryModule {
			continue
		}
		v.Library = d.Version
		if d.Replace != nil {
			v.LibraryReplace = d.Replace.Path
			if d.Replace.Version != "" && d.Replace.Version != "(devel)" {
				v.LibraryReplace += " " + d.Replace.Version
			}
		}
	}
	dirty := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if v.Revision != "" && dirty {
		v.Revision += "+dirty"
	}
	return v
}

func (c *cli) versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of remotecache",
		Long: `Print the version of the command's module, of the library it was built
with, the VCS revision if the build recorded one, and Go's version and
platform. --version prints the first line only.`,
		Args:                  exactArgs(0),
		DisableFlagsInUseLine: true,
		RunE: c.runE(func(context.Context, []string) error {
			v := version()
			fmt.Fprintf(c.stdout, "remotecache version %s\n", v.Main)
			lib := v.Library
			if v.LibraryReplace != "" {
				lib += " => " + v.LibraryReplace
			}
			if lib != "" {
				fmt.Fprintf(c.stdout, "library: %s %s\n", libraryModule, lib)
			}
			if v.Revision != "" {
				fmt.Fprintf(c.stdout, "revision: %s\n", v.Revision)
			}
			fmt.Fprintf(c.stdout, "go: %s %s\n", v.Go, v.Platform)
			return nil
		}),
	}
}
