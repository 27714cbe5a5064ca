package command

import (
	"fmt"
	"net/url"
	"time"

	"github.com/spf13/cobra"

	"github.com/trustlog/trustlog/functions/api"
)

func (e *env) auditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Verify the event log and trace what happened to a certificate, token or identity"}
	cmd.AddCommand(e.auditVerifyCmd(), e.auditHistoryCmd())
	return cmd
}

func (e *env) auditVerifyCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "verify [<remote>:]",
		Short: "Recompute the hash chain of the whole event log and report the first break",
		Args:  e.remoteArgs(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, _, err := e.remoteClient(args)
			if err != nil {
				return err
			}
			var v api.AuditVerification
			if _, err := c.Get(cmd.Context(), "/1.0/trustlog/audit/verify", &v); err != nil {
				return err
			}
			switch format {
			case formatJSON:
				return writeJSON(e.stdout, v)
			case formatYAML:
				return writeYAML(e.stdout, v)
			}
			fmt.Fprintf(e.stdout, "Events checked: %d (last %d, hash %s)\n", v.Events, v.LastSeq, v.LastHash)
			if v.FirstBreak != 0 {
				reason := v.FirstBreakReason
				if reason == "" { // a server from before the reason was reported
					reason = fmt.Sprintf("its prevhash does not match event %d", v.FirstBreak-1)
				}
				fmt.Fprintf(e.stdout, "Chain broken at sequence %d: %s\n", v.FirstBreak, reason)
			}
			for _, seq := range v.Undecodable {
				fmt.Fprintf(e.stdout, "Event %d is not a valid Trustlog event\n", seq)
			}
			if !v.OK {
				return fmt.Errorf("the event log does not verify")
			}
			fmt.Fprintln(e.stdout, "The hash chain is whole.")
			return nil
		},
		ValidArgsFunction: e.completeRemote,
	}
	cmd.Flags().StringVarP(&format, "format", "f", formatTable, "output format (table, json, yaml)")
	return cmd
}

func (e *env) auditHistoryCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "history [<remote>:] <fingerprint | token | identity>",
		Short: "Show every event about a certificate (fingerprint, prefix or name), a token (id or name) or an identity, with actors",
		Args:  e.remoteArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(format); err != nil {
				return err
			}
			c, rest, err := e.remoteClient(args)
			if err != nil {
				return err
			}
			if len(rest) != 1 {
				return fmt.Errorf("Missing the fingerprint, token or identity")
			}
			var hist []api.AuditEntry
			if _, err := c.Get(cmd.Context(), "/1.0/trustlog/audit/history?subject="+url.QueryEscape(rest[0]), &hist); err != nil {
				return err
			}
			rows := make([][]string, 0, len(hist))
			for _, h := range hist {
				rows = append(rows, []string{fmt.Sprint(h.Seq), h.Time.UTC().Format(time.RFC3339), shortType(h.Type), h.Action,
					h.Actor.Username, h.Actor.Protocol, h.Actor.Address})
			}
			return renderList(e.stdout, format, []string{"SEQ", "TIME", "TYPE", "ACTION", "ACTOR", "METHOD", "ADDRESS"}, rows, hist)
		},
		ValidArgsFunction: e.completeFingerprint,
	}
	formatFlag(cmd, &format)
	return cmd
}
